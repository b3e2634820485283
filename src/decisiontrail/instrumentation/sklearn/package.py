_instruments = ("scikit-learn >= 1.3",)
