"""Use cases behind the routes: each takes a session (and the Temporal client) and an actor."""
