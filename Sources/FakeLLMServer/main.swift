print("fakellm")
