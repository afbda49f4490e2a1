# Typical mistakes in the hidden-layers notebook. Each block replaces one answer cell; "fails" lists the
# test cells that this mistake must fail, and it must pass all the others.

# %% hidden_layer_forward | fails: forward_shape
def hidden_layer_forward(features, coefs, intercepts):
    """Right values, but the output layer's column (n, 1) is returned as it is."""
    layer = np.asarray(features, dtype=float)
    for weights, bias in zip(coefs, intercepts, strict=True):
        layer = sigmoid(np.dot(layer, weights) + bias)
    return layer

# %% compare_models | fails: compare_models_lesson, compare_models_hidden
def compare_models(train_x, train_y, test_x, test_y):
    """Scores both models on the data they were trained on."""
    mlp = MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000).fit(train_x, train_y)
    logistic = LogisticRegression(solver="lbfgs").fit(train_x, train_y)
    return {
        "mlp": accuracy_score(train_y, mlp.predict(train_x)),
        "logistic": accuracy_score(train_y, logistic.predict(train_x)),
    }
