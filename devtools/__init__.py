"""Tools for working on Crier that are not the product: what the test suite and the
benchmarks share (scratch databases, Redis dbs and RabbitMQ vhosts on the shared servers)."""
