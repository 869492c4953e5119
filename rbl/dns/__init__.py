"""DNS answering: the wire format of blocklist answers (wire), answering from a snapshot
(answer, general: pure), the UDP and TCP servers (server, batch), the worker
process (worker) and the primary's pool of workers (pool).

AXFR, IXFR and NOTIFY questions reaching a worker are handed to :mod:`rbl.transfer`.
"""
