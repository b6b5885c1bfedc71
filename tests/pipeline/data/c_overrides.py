config.minCount = 3  # noqa: F821
