# Answers to final_accuracy(make_model, train_x, train_y, test_x, test_y), written the way students write them.

# %% correct: fit and score in one line
def final_accuracy(make_model, train_x, train_y, test_x, test_y):
    return make_model().fit(train_x, train_y).score(test_x, test_y)

# %% correct: the mean of right predictions
def final_accuracy(make_model, train_x, train_y, test_x, test_y):
    model = make_model()
    model.fit(train_x, train_y)
    return np.mean(model.predict(test_x) == test_y.to_numpy())

# %% correct: numpy arrays
def final_accuracy(make_model, train_x, train_y, test_x, test_y):
    model = make_model().fit(train_x.to_numpy(), train_y.to_numpy())
    return accuracy_score(test_y.to_numpy(), model.predict(test_x.to_numpy()))

# %% wrong: scores on the training data | fails: final_accuracy_lesson, final_accuracy_hidden
def final_accuracy(make_model, train_x, train_y, test_x, test_y):
    model = make_model().fit(train_x, train_y)
    return accuracy_score(train_y, model.predict(train_x))

# %% wrong: fits on the test data (by chance right on the lesson's split) | fails: final_accuracy_hidden
def final_accuracy(make_model, train_x, train_y, test_x, test_y):
    model = make_model().fit(test_x, test_y)
    return accuracy_score(test_y, model.predict(test_x))

# %% wrong: returns the predictions | fails: final_accuracy_lesson, final_accuracy_hidden
def final_accuracy(make_model, train_x, train_y, test_x, test_y):
    return make_model().fit(train_x, train_y).predict(test_x)

# %% wrong: a percentage | fails: final_accuracy_lesson, final_accuracy_hidden
def final_accuracy(make_model, train_x, train_y, test_x, test_y):
    return 100 * make_model().fit(train_x, train_y).score(test_x, test_y)

# %% wrong: the cross-validation mean instead of the test accuracy | fails: final_accuracy_lesson, final_accuracy_hidden
def final_accuracy(make_model, train_x, train_y, test_x, test_y):
    return np.mean(cross_validate(make_model, train_x, train_y))

# %% wrong: its own KNN (k=3) instead of make_model() | fails: final_accuracy_hidden | says: never called make_model()
def final_accuracy(make_model, train_x, train_y, test_x, test_y):
    model = KNeighborsClassifier(n_neighbors=3).fit(train_x, train_y)
    return accuracy_score(test_y, model.predict(test_x))
