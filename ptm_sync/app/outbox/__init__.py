"""The outbox: queue and leases, dispatch, delivery."""
