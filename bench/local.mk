# bench: see issue tracker
