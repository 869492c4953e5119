"""DNS answering: a worker's replies, from the snapshot it maps.

The fast paths from byte templates (wire), the general path through dnslib
(general), the Responder that tries them in turn (answer; these three open no
sockets), the query counts (counts), the UDP and TCP servers (server, batch),
the worker process (worker) and the primary's pool of workers (pool).

AXFR and IXFR questions over TCP, and queries signed with TSIG, are handed to
:mod:`rbl.transfer`. The protocol's numbers, and the encodings answering
shares with transfers, are in :mod:`rbl.protocol`.
"""
