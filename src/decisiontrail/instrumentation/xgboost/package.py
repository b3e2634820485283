_instruments = ("xgboost >= 2.0",)
