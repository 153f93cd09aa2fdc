"""Side effects, as classes given their dependencies in the constructor."""
