"""The HTTP layer around the routes: middleware that guards every request and response."""
