# Answers to train(features, labels), written the way students write them.

# %% correct: string column names instead of a plain array
def train(features, labels):
    frame = features.copy()
    frame.columns = frame.columns.astype(str)
    model = SGDRegressor()
    model.fit(frame, labels)
    return model.coef_

# %% correct: DataFrame.to_numpy and a fixed random_state
def train(features, labels):
    return SGDRegressor(random_state=0).fit(features.to_numpy(), labels.to_numpy()).coef_

# %% correct: few epochs, so SGD stops early and scikit-learn prints a ConvergenceWarning
def train(features, labels):
    model = SGDRegressor(max_iter=50)
    model.fit(np.asarray(features, dtype=float), labels)
    return model.coef_

# %% correct: .values, as older tutorials write it
def train(features, labels):
    lr = SGDRegressor()
    lr.fit(features.values, labels.values)
    weights = lr.coef_
    return weights

# %% wrong: returns the fitted model | fails: train_lesson, train_hidden
def train(features, labels):
    model = SGDRegressor()
    model.fit(np.asarray(features), labels)
    return model

# %% wrong: fits the lesson's frame as it is (mixed column names) | fails: train_lesson, train_hidden
def train(features, labels):
    lr = SGDRegressor()
    lr.fit(features, labels)
    return lr.coef_

# %% wrong: drops the weight of the bias column | fails: train_lesson, train_hidden
def train(features, labels):
    model = SGDRegressor().fit(np.asarray(features), labels)
    return model.coef_[:-1]

# %% wrong: returns the intercept | fails: train_lesson, train_hidden
def train(features, labels):
    model = SGDRegressor().fit(np.asarray(features), labels)
    return model.intercept_

# %% wrong: one epoch is not enough training | fails: train_hidden
def train(features, labels):
    model = SGDRegressor(max_iter=1, tol=None)
    model.fit(np.asarray(features), labels)
    return model.coef_
