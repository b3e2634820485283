_instruments = ("lightgbm >= 4.0",)
