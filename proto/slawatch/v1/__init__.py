"""Generated protobuf and gRPC code for the slawatch.v1 wire contract.

Regenerate with ``scripts/gen-proto``; never edit the ``*_pb2*`` files by hand.
"""
