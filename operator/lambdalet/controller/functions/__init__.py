"""The Function side of the operator: what each Function's children should be (``resources``,
pure), the plan that brings them in line (``plan``, pure), the status it shows (``status``, pure),
the workers that carry it out (``reconciler``), what is read off the children (``children``) and
the cold-start figure the autoscaler hands over (``coldstarts``)."""
