"""JSON-RPC 2.0 control protocol: server, client, errors."""
