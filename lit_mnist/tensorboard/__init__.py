"""TensorBoard: the run's logger and folder, the pictures of the test pass, and what the network learned."""
