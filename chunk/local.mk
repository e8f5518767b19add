# chunk: see issue tracker
