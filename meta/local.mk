# meta: see issue tracker
