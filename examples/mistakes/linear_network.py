# Typical mistakes in the linear-network notebook. Each block replaces one answer cell; "fails" lists
# the test cells that this mistake must fail, and it must pass all the others.

# %% add_bias | fails: add_bias_input_unchanged
def add_bias(features):
    """The lesson's own code: it adds the column to the caller's frame instead of a copy."""
    features["bias"] = 1
    return features

# %% train | fails: train_lesson, train_hidden
def train(features, labels):
    """Returns the fitted model instead of its weights."""
    model = SGDRegressor()
    model.fit(np.asarray(features), labels)
    return model

# %% feedforward | fails: feedforward_row_weights_shape
def feedforward(features, weights):
    """The lesson's own code: a (1, n) row of weights gives a column (n, 1) of predictions."""
    predictions = np.dot(features, weights.T)
    return predictions
