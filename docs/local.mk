# docs: shipped with the distribution (EXTRA_DIST has docs/).
