# tools: see issue tracker
