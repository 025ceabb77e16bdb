"""The consumer loop of one projection: runner, batch preparation, the transaction, poison."""
