"""Zones: their files (config), the compiler (compile, patch) and the compiled snapshot
workers answer from (snapshot, snapshot_file: no numpy), the source that keeps a
snapshot fresh from the store and the files (source), and the exports and their
records (export, records).
"""
