# Typical mistakes in the digits notebook. Each block replaces one answer cell; "fails" lists the test
# cells that this mistake must fail, and it must pass all the others.

# %% load_digits_frame | fails: load_digits_frame_types
def load_digits_frame():
    """Returns the raw numpy arrays instead of a DataFrame and a Series."""
    digits = load_digits()
    return digits["data"], digits["target"]

# %% cross_validate | fails: cross_validate_lesson, cross_validate_hidden
def cross_validate(make_model, features, labels, n_splits=4):
    """Selects the rows with .loc: KFold gives positions, .loc looks up row labels."""
    fold_accuracies = []
    for train_index, test_index in KFold(n_splits=n_splits).split(features):
        model = make_model()
        model.fit(features.loc[train_index], labels.loc[train_index])
        predictions = model.predict(features.loc[test_index])
        fold_accuracies.append(accuracy_score(labels.loc[test_index], predictions))
    return fold_accuracies

# %% final_accuracy | fails: final_accuracy_lesson, final_accuracy_hidden
def final_accuracy(make_model, train_x, train_y, test_x, test_y):
    """Measures the model on the data it was trained on."""
    model = make_model()
    model.fit(train_x, train_y)
    return accuracy_score(train_y, model.predict(train_x))

# %% compare_architectures | fails: compare_architectures_hidden
def compare_architectures(hidden_layer_sizes, features, labels):
    """Forgets to pass the architecture: every entry is the default MLP."""
    return {
        architecture: float(np.mean(cross_validate(lambda: MLPClassifier(max_iter=500), features, labels)))
        for architecture in hidden_layer_sizes
    }
