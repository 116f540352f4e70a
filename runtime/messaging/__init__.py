"""The messaging side of the engine: delivery (inbox and outbox), receivers, transports (in
process and HTTP), the inline bridge for synchronous flows, and the node that ties them together."""
