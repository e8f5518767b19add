# fs: see issue tracker
