"""Auditors' and policy authors' tools over recorded histories."""
