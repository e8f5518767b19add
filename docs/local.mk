# docs: see issue tracker
