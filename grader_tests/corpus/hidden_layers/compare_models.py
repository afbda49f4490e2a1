# Answers to compare_models(train_x, train_y, test_x, test_y), written the way students write them.

# %% correct: the models' own score method
def compare_models(train_x, train_y, test_x, test_y):
    mlp = MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000).fit(train_x, train_y)
    logistic = LogisticRegression(solver="lbfgs").fit(train_x, train_y)
    return {"mlp": mlp.score(test_x, test_y), "logistic": logistic.score(test_x, test_y)}

# %% correct: another seed for the MLP
def compare_models(train_x, train_y, test_x, test_y):
    mlp = MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000, random_state=1)
    mlp.fit(train_x, train_y)
    lr = LogisticRegression(solver="lbfgs")
    lr.fit(train_x, train_y)
    return {"mlp": accuracy_score(test_y, mlp.predict(test_x)), "logistic": accuracy_score(test_y, lr.predict(test_x))}

# %% correct: accuracy as the mean of right predictions, dict()
def compare_models(train_x, train_y, test_x, test_y):
    models = {
        "mlp": MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000),
        "logistic": LogisticRegression(solver="lbfgs"),
    }
    return dict(
        (name, float(np.mean(model.fit(train_x, train_y).predict(test_x) == test_y.to_numpy())))
        for name, model in models.items()
    )

# %% wrong: scores both models on their training data | fails: compare_models_lesson, compare_models_hidden
def compare_models(train_x, train_y, test_x, test_y):
    mlp = MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000).fit(train_x, train_y)
    lr = LogisticRegression(solver="lbfgs").fit(train_x, train_y)
    return {"mlp": mlp.score(train_x, train_y), "logistic": lr.score(train_x, train_y)}

# %% wrong: fits on the test data | fails: compare_models_lesson, compare_models_hidden
def compare_models(train_x, train_y, test_x, test_y):
    mlp = MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000).fit(test_x, test_y)
    lr = LogisticRegression(solver="lbfgs").fit(test_x, test_y)
    return {"mlp": mlp.score(test_x, test_y), "logistic": lr.score(test_x, test_y)}

# %% wrong: the two accuracies under each other's names | fails: compare_models_hidden
def compare_models(train_x, train_y, test_x, test_y):
    mlp = MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000).fit(train_x, train_y)
    lr = LogisticRegression(solver="lbfgs").fit(train_x, train_y)
    return {"logistic": mlp.score(test_x, test_y), "mlp": lr.score(test_x, test_y)}

# %% wrong: a list instead of a dictionary | fails: compare_models_lesson, compare_models_hidden
def compare_models(train_x, train_y, test_x, test_y):
    mlp = MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000).fit(train_x, train_y)
    lr = LogisticRegression(solver="lbfgs").fit(train_x, train_y)
    return [mlp.score(test_x, test_y), lr.score(test_x, test_y)]

# %% wrong: percentages instead of accuracies | fails: compare_models_lesson, compare_models_hidden
def compare_models(train_x, train_y, test_x, test_y):
    mlp = MLPClassifier(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000).fit(train_x, train_y)
    lr = LogisticRegression(solver="lbfgs").fit(train_x, train_y)
    return {"mlp": 100 * mlp.score(test_x, test_y), "logistic": 100 * lr.score(test_x, test_y)}

# %% wrong: the MLP keeps MLPClassifier's default relu activation | fails: compare_models_hidden | says: activation='relu'
def compare_models(train_x, train_y, test_x, test_y):
    mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=10000).fit(train_x, train_y)
    logistic = LogisticRegression(solver="lbfgs").fit(train_x, train_y)
    return {"mlp": accuracy_score(test_y, mlp.predict(test_x)),
            "logistic": accuracy_score(test_y, logistic.predict(test_x))}

# %% correct: MLPClassifier imported inside the function
def compare_models(train_x, train_y, test_x, test_y):
    from sklearn.neural_network import MLPClassifier as MLP

    mlp = MLP(hidden_layer_sizes=(4,), activation="logistic", max_iter=10000).fit(train_x, train_y)
    logistic = LogisticRegression(solver="lbfgs").fit(train_x, train_y)
    return {"mlp": mlp.score(test_x, test_y), "logistic": logistic.score(test_x, test_y)}
