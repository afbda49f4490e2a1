# Answers to log_feedforward(class_features, weights), written the way students write them.

# %% correct: np.where on the probabilities
def log_feedforward(class_features, weights):
    probabilities = sigmoid(np.asarray(class_features) @ np.ravel(weights))
    return np.where(probabilities >= 0.5, 1, 0)

# %% correct: no sigmoid needed, z >= 0 exactly where sigmoid(z) >= 0.5
def log_feedforward(class_features, weights):
    return (np.dot(class_features, weights.T) >= 0).astype(int).ravel()

# %% correct: the lesson's code with a ravel at the end
def log_feedforward(class_features, log_train_weights):
    linear_combination = np.dot(class_features, log_train_weights.T)
    log_predictions = sigmoid(linear_combination)
    log_predictions[log_predictions >= 0.5] = 1
    log_predictions[log_predictions < 0.5] = 0
    return log_predictions.ravel()

# %% correct: a boolean array
def log_feedforward(class_features, weights):
    from scipy.special import expit

    return expit(np.asarray(class_features, dtype=float) @ np.ravel(weights)) >= 0.5

# %% wrong: the lesson's code returns a column (n, 1) | fails: log_feedforward_shape
def log_feedforward(class_features, log_train_weights):
    linear_combination = np.dot(class_features, log_train_weights.T)
    log_predictions = sigmoid(linear_combination)
    log_predictions[log_predictions >= 0.5] = 1
    log_predictions[log_predictions < 0.5] = 0
    return log_predictions

# %% wrong: returns probabilities instead of labels | fails: log_feedforward_labels, log_feedforward_hidden
def log_feedforward(class_features, weights):
    return sigmoid(np.asarray(class_features) @ np.ravel(weights))

# %% wrong: the comparison the wrong way round | fails: log_feedforward_hidden
def log_feedforward(class_features, weights):
    return (sigmoid(np.asarray(class_features) @ np.ravel(weights)) < 0.5).astype(int)

# %% wrong: flattens the caller's weights in place | fails: log_feedforward_input_unchanged
def log_feedforward(class_features, weights):
    weights.shape = (-1,)
    return (sigmoid(np.asarray(class_features) @ weights) >= 0.5).astype(int)

# %% wrong: compares the probabilities with 0 | fails: log_feedforward_hidden
def log_feedforward(class_features, weights):
    return (sigmoid(np.asarray(class_features) @ np.ravel(weights)) >= 0).astype(int)
