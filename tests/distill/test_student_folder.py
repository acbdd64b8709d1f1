"""The student folder: a stock scheduler that samples at the trained times."""



from zlab.distill.student import student_pipeline


def test_student_pipeline_schedule_is_the_trained_one(tiny_pipe):
    from zlab.distill.student import check_student_schedule

    pipe = student_pipeline(tiny_pipe, tiny_pipe.transformer)
    assert check_student_schedule(pipe, height=64, width=96) == {1: [1.0], 2: [1.0, 0.5], 4: [1.0, 0.75, 0.5, 0.25]}
