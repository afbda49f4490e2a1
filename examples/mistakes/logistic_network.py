# Typical mistakes in the logistic-network notebook. Each block replaces one answer cell; "fails" lists
# the test cells that this mistake must fail, and it must pass all the others.

# %% sigmoid | fails: sigmoid_stable
def sigmoid(z):
    """The lesson's formula: right values, but np.exp(1000) overflows and numpy warns."""
    return 1 / (1 + np.exp(-z))

# %% log_train | fails: log_train_lesson, log_train_hidden
def log_train(class_features, class_labels):
    """Returns the model's predictions instead of its weights."""
    model = SGDClassifier()
    model.fit(class_features, class_labels)
    return model.predict(class_features)

# %% log_feedforward | fails: log_feedforward_shape
def log_feedforward(class_features, log_train_weights):
    """The lesson's code: a (1, n) row of weights gives a column (n, 1) of labels."""
    linear_combination = np.dot(class_features, log_train_weights.T)
    log_predictions = sigmoid(linear_combination)
    log_predictions[log_predictions >= 0.5] = 1
    log_predictions[log_predictions < 0.5] = 0
    return log_predictions
