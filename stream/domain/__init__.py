"""Pure domain: no broker, no Redis, no event loop. Everything here is unit-tested."""
