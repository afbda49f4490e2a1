# Answers to compare_architectures(hidden_layer_sizes, features, labels), written the way students write them.

# %% correct: a dictionary comprehension, the architecture bound as a default argument
def compare_architectures(hidden_layer_sizes, features, labels):
    return {
        h: np.mean(cross_validate(lambda h=h: MLPClassifier(hidden_layer_sizes=h, activation="logistic",
                                                            max_iter=500), features, labels))
        for h in hidden_layer_sizes
    }

# %% correct: the cross-validation loop written out, without cross_validate
def compare_architectures(hidden_layer_sizes, features, labels):
    results = {}
    for architecture in hidden_layer_sizes:
        accuracies = []
        for train_index, test_index in KFold(n_splits=4).split(features):
            mlp = MLPClassifier(hidden_layer_sizes=architecture, max_iter=500, activation="logistic", solver="adam")
            mlp.fit(features.iloc[train_index], labels.iloc[train_index])
            accuracies.append(accuracy_score(labels.iloc[test_index], mlp.predict(features.iloc[test_index])))
        results[architecture] = np.mean(accuracies)
    return results

# %% correct: functools.partial and a positional architecture
def compare_architectures(hidden_layer_sizes, features, labels):
    from functools import partial

    means = {}
    for architecture in hidden_layer_sizes:
        make_model = partial(MLPClassifier, architecture, activation="logistic", max_iter=500)
        means[architecture] = float(np.mean(cross_validate(make_model, features, labels, n_splits=4)))
    return means

# %% wrong: forgets to pass the architecture | fails: compare_architectures_hidden
def compare_architectures(hidden_layer_sizes, features, labels):
    return {
        architecture: float(np.mean(cross_validate(lambda: MLPClassifier(max_iter=500), features, labels)))
        for architecture in hidden_layer_sizes
    }

# %% wrong: the fold accuracies instead of their mean | fails: compare_architectures_structure, compare_architectures_hidden
def compare_architectures(hidden_layer_sizes, features, labels):
    return {
        h: cross_validate(lambda h=h: MLPClassifier(hidden_layer_sizes=h, max_iter=500), features, labels)
        for h in hidden_layer_sizes
    }

# %% wrong: late binding, every model gets the last architecture | fails: compare_architectures_hidden
def compare_architectures(hidden_layer_sizes, features, labels):
    makers = [lambda: MLPClassifier(hidden_layer_sizes=h, activation="logistic", max_iter=500)
              for h in hidden_layer_sizes]
    return {h: np.mean(cross_validate(make, features, labels))
            for h, make in zip(hidden_layer_sizes, makers, strict=True)}

# %% wrong: string keys | fails: compare_architectures_structure, compare_architectures_hidden
def compare_architectures(hidden_layer_sizes, features, labels):
    return {
        str(h): np.mean(cross_validate(lambda h=h: MLPClassifier(hidden_layer_sizes=h, max_iter=500), features, labels))
        for h in hidden_layer_sizes
    }

# %% wrong: the best fold instead of the mean | fails: compare_architectures_hidden
def compare_architectures(hidden_layer_sizes, features, labels):
    return {
        h: max(cross_validate(lambda h=h: MLPClassifier(hidden_layer_sizes=h, max_iter=500), features, labels))
        for h in hidden_layer_sizes
    }

# %% wrong: MLPClassifier imported inside the function, out of the tests' reach | fails: compare_architectures_structure, compare_architectures_hidden | says: imported inside your function
def compare_architectures(hidden_layer_sizes, features, labels):
    from sklearn.neural_network import MLPClassifier

    return {
        h: float(np.mean(cross_validate(
            lambda h=h: MLPClassifier(hidden_layer_sizes=h, activation="logistic", max_iter=500), features, labels)))
        for h in hidden_layer_sizes
    }
