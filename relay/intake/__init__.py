"""Pure decoding and authentication of each kind of call the relay receives."""
