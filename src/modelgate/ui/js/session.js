// The signed-in token lives in sessionStorage only: gone when the tab closes or on sign-out.

const KEY = "modelgate.token";

export function getToken() {
  return sessionStorage.getItem(KEY);
}

export function setToken(token) {
  sessionStorage.setItem(KEY, token);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}
