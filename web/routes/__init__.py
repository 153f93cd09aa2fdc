"""Routers per area. Handlers parse, authorise, call one service, render."""
