"""Redis for state shared by replicas (``--redis``): the wire protocol, the client, decisions."""
