# Typical mistakes in the hidden-layers notebook. Each block replaces one answer cell; "fails" lists the
# test cells that this mistake must fail, and it must pass all the others.

# %% hidden_layer_forward | fails: forward_shape
def hidden_layer_forward(features, coefs, intercepts):
    """Right values, but the output layer's column (n, 1) is returned as it is."""
    values = np.array(features, dtype=float)
    for index in range(len(coefs)):
        values = 1 / (1 + np.exp(-(values.dot(coefs[index]) + intercepts[index])))
    return values

# %% compare_models | fails: compare_models_lesson, compare_models_hidden
def compare_models(train_x, train_y, test_x, test_y):
    """Scores both models on the data they were trained on."""
    models = {"mlp": MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000),
              "logistic": LogisticRegression(solver="lbfgs")}
    scores = {}
    for name, model in models.items():
        model.fit(train_x, train_y)
        scores[name] = model.score(train_x, train_y)
    return scores
