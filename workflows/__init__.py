"""Deterministic workflow code only: no I/O, no settings, no clock but workflow.now()."""
