"""Temporal-free document library (DOCX templating, DOCX→PDF, signing): bytes or paths in,
bytes or paths out. Empty until the proposal and signing work lands."""
