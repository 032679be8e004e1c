"""Thin HTTP routes: parse the wire model, call a service, render the answer."""
