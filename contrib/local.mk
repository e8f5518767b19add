# contrib: see issue tracker
