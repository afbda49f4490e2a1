# Answers to log_train(class_features, class_labels), written the way students write them.

# %% correct: logistic loss, which makes SGDClassifier a logistic regression
def log_train(class_features, class_labels):
    model = SGDClassifier(loss="log_loss")
    model.fit(class_features, class_labels)
    return model.coef_

# %% correct: a fixed random_state
def log_train(class_features, class_labels):
    return SGDClassifier(random_state=0).fit(class_features, class_labels).coef_

# %% correct: 1-D weights
def log_train(class_features, class_labels):
    sg = SGDClassifier()
    sg.fit(np.asarray(class_features), np.asarray(class_labels))
    return sg.coef_.ravel()

# %% correct: LogisticRegression, the same model fitted exactly
def log_train(class_features, class_labels):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(class_features, class_labels).coef_

# %% wrong: returns the predictions | fails: log_train_lesson, log_train_hidden
def log_train(class_features, class_labels):
    model = SGDClassifier()
    model.fit(class_features, class_labels)
    return model.predict(class_features)

# %% wrong: returns the model | fails: log_train_lesson, log_train_hidden
def log_train(class_features, class_labels):
    return SGDClassifier().fit(class_features, class_labels)

# %% wrong: returns the intercept | fails: log_train_lesson, log_train_hidden
def log_train(class_features, class_labels):
    return SGDClassifier().fit(class_features, class_labels).intercept_

# %% wrong: forgets to fit | fails: log_train_lesson, log_train_hidden
def log_train(class_features, class_labels):
    sg = SGDClassifier()
    return sg.coef_

# %% wrong: features and labels in the wrong order | fails: log_train_lesson, log_train_hidden
def log_train(class_features, class_labels):
    model = SGDClassifier()
    model.fit(class_labels, class_features)
    return model.coef_
