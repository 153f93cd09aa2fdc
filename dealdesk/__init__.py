"""dealdesk: the deal-desk engine's process wiring (settings, CLI, worker, dev stack)."""
