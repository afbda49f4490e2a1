# Correct answers that write to stderr while they work (a ConvergenceWarning, a debug print). Plain
# nbgrader scores any stderr output as a failed test: these must still get full marks.

# %% train
def train(features, labels):
    """Few epochs: SGD stops before it converges and scikit-learn warns, yet R² is above 0.9999."""
    model = SGDRegressor(max_iter=50)
    model.fit(np.asarray(features, dtype=float), labels)
    return model.coef_

# %% feedforward
def feedforward(features, weights):
    import sys

    print(f"feedforward: {np.shape(features)} @ {np.shape(weights)}", file=sys.stderr)
    return np.asarray(features, dtype=float) @ np.ravel(weights)
