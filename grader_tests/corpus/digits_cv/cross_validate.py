# Answers to cross_validate(make_model, features, labels, n_splits=4), written the way students write them.

# %% correct: cross_val_score with the right KFold
def cross_validate(make_model, features, labels, n_splits=4):
    from sklearn.model_selection import cross_val_score

    return list(cross_val_score(make_model(), features, labels, cv=KFold(n_splits=n_splits)))

# %% correct: folds made by hand with np.array_split, as KFold makes them
def cross_validate(make_model, features, labels, n_splits=4):
    positions = np.arange(len(features))
    accuracies = []
    for test_index in np.array_split(positions, n_splits):
        train_index = np.setdiff1d(positions, test_index)
        model = make_model().fit(features.iloc[train_index], labels.iloc[train_index])
        accuracies.append(accuracy_score(labels.iloc[test_index], model.predict(features.iloc[test_index])))
    return accuracies

# %% correct: numpy arrays indexed by position
def cross_validate(make_model, features, labels, n_splits=4):
    x, y = features.to_numpy(), labels.to_numpy()
    fold_accuracies = []
    for train_index, test_index in KFold(n_splits=n_splits).split(x):
        model = make_model()
        model.fit(x[train_index], y[train_index])
        fold_accuracies.append(accuracy_score(y[test_index], model.predict(x[test_index])))
    return fold_accuracies

# %% correct: the model's score method, as a numpy array
def cross_validate(make_model, features, labels, n_splits=4):
    scores = []
    for train_index, test_index in KFold(n_splits).split(features):
        model = make_model()
        model.fit(features.iloc[train_index], labels.iloc[train_index])
        scores.append(model.score(features.iloc[test_index], labels.iloc[test_index]))
    return np.array(scores)

# %% wrong: .loc looks up row labels, not positions | fails: cross_validate_lesson, cross_validate_hidden
def cross_validate(make_model, features, labels, n_splits=4):
    fold_accuracies = []
    for train_index, test_index in KFold(n_splits=n_splits).split(features):
        model = make_model().fit(features.loc[train_index], labels.loc[train_index])
        fold_accuracies.append(accuracy_score(labels.loc[test_index], model.predict(features.loc[test_index])))
    return fold_accuracies

# %% wrong: shuffled folds | fails: cross_validate_lesson, cross_validate_hidden
def cross_validate(make_model, features, labels, n_splits=4):
    fold_accuracies = []
    for train_index, test_index in KFold(n_splits=n_splits, shuffle=True, random_state=2).split(features):
        model = make_model().fit(features.iloc[train_index], labels.iloc[train_index])
        fold_accuracies.append(accuracy_score(labels.iloc[test_index], model.predict(features.iloc[test_index])))
    return fold_accuracies

# %% wrong: scores each model on the folds it was trained on | fails: cross_validate_lesson, cross_validate_hidden
def cross_validate(make_model, features, labels, n_splits=4):
    fold_accuracies = []
    for train_index, test_index in KFold(n_splits=n_splits).split(features):
        model = make_model().fit(features.iloc[train_index], labels.iloc[train_index])
        fold_accuracies.append(accuracy_score(labels.iloc[train_index], model.predict(features.iloc[train_index])))
    return fold_accuracies

# %% wrong: one model for every fold | fails: cross_validate_fresh_model
def cross_validate(make_model, features, labels, n_splits=4):
    model = make_model()
    fold_accuracies = []
    for train_index, test_index in KFold(n_splits=n_splits).split(features):
        model.fit(features.iloc[train_index], labels.iloc[train_index])
        fold_accuracies.append(accuracy_score(labels.iloc[test_index], model.predict(features.iloc[test_index])))
    return fold_accuracies

# %% wrong: returns the mean instead of the fold accuracies | fails: cross_validate_lesson, cross_validate_hidden
def cross_validate(make_model, features, labels, n_splits=4):
    fold_accuracies = []
    for train_index, test_index in KFold(n_splits=n_splits).split(features):
        model = make_model().fit(features.iloc[train_index], labels.iloc[train_index])
        fold_accuracies.append(accuracy_score(labels.iloc[test_index], model.predict(features.iloc[test_index])))
    return np.mean(fold_accuracies)

# %% wrong: always 4 folds | fails: cross_validate_hidden
def cross_validate(make_model, features, labels, n_splits=4):
    fold_accuracies = []
    for train_index, test_index in KFold(n_splits=4).split(features):
        model = make_model().fit(features.iloc[train_index], labels.iloc[train_index])
        fold_accuracies.append(accuracy_score(labels.iloc[test_index], model.predict(features.iloc[test_index])))
    return fold_accuracies

# %% wrong: folds of len // n_splits rows, the remainder never validated | fails: cross_validate_lesson, cross_validate_hidden | says: Your folds differ from KFold's
def cross_validate(make_model, features, labels, n_splits=4):
    size = len(features) // n_splits
    accuracies = []
    for k in range(n_splits):
        test = np.arange(k * size, (k + 1) * size)
        train = np.setdiff1d(np.arange(len(features)), test)
        model = make_model().fit(features.iloc[train], labels.iloc[train])
        accuracies.append(accuracy_score(labels.iloc[test], model.predict(features.iloc[test])))
    return accuracies
