"""Delivery of the outbox's notices (:mod:`rbl.store.outbox`) to each vendor's channels.

``signing`` signs and checks webhook bodies (``Rbl-Signature: t=TIMESTAMP,v1=HEX``);
``digest`` writes the email digest (pure); ``courier`` runs in ``rbl serve`` and
delivers, at least once and in id order, retrying with backoff across restarts.
"""
