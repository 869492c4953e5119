"""Zone transfers to secondaries (NSD, Knot, BIND): each snapshot's records as a version
on disk with the differences between versions (versions, history), AXFR and IXFR
answered from them (respond), NOTIFY sent to the secondaries (notify, publish), and
TSIG on both (tsig); message and rrwire are the DNS wire format they read and write.

It builds on zone (the snapshot and the transfer settings) and on
:mod:`rbl.protocol` (the numbers and encodings it shares with answering); the
DNS workers (:mod:`rbl.dns`) hand it the transfer questions and the signed
queries, and the primary (:mod:`rbl.primary`) publishes each snapshot to it.
"""
