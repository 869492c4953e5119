"""Zones: their files, the snapshot compiler and (later) exports."""
