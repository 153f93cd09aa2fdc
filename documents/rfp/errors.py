"""The one exception of ``documents.rfp``: a customer's file we can't read or write."""

from __future__ import annotations


class RfpFileError(ValueError):
    """The file can't be used as an RFP file; ``str()`` names the problem and the fix."""
