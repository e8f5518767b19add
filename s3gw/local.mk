# s3gw: see issue tracker
