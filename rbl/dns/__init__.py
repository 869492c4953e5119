"""DNS: the wire codec, answering (pure) and the UDP/TCP servers."""
